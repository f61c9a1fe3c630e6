"""Views of a plan or a finished run: Mermaid, DOT, Chrome trace, HTML."""
