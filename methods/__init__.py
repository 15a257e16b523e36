"""Methods, guidance encoders and the shared enhancement network."""
import os

# OpenMP threads that spin while waiting make torch up to 30x slower whenever another process
# competes for the cores (a DVC queue's second worker, a parallel test); they must sleep instead.
# Read once, when torch loads OpenMP, so it is set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
