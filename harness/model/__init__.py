"""The model: plain data every layer shares (a case, a verdict, a finding, what an implementation
declares, the registry of implementations) and the small utilities under it (text, files)."""
