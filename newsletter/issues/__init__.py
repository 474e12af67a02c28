"""Issues: the editor's actions (write, preview, test, queue, pause, cancel) and the weekly slot."""
