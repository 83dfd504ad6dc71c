"""The served format, defined once, below both the exporter (`core.export`) and the service
(`serving`): the compiled model (numpy arrays and the code that reads them: `model`, the DFS
program `dfs`, the batch decision tables `decisions`), how it is stored (`npz`), and the
serving folder with its manifest and verified loader (`artifact`). numpy and the standard
library only: the service's image ships it."""
