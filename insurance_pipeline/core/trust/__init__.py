"""Trust that does not sit beside the data: the pipeline's private key signs statements
(verdicts, approvals, step-cache entries, the model files it wrote), and verifiers believe
only what a trusted public key signed. A hash stored beside the bytes it protects is not a
check; a signature is."""
