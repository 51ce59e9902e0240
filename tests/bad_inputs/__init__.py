"""Bad inputs fed to the real ``segbench`` command line: every one must end in a clear error (exit 2)."""
