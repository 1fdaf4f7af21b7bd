"""Reading an experiment back: its recorded data (rundata), reports and status views of it."""
