"""The ``dagwave`` command line: pipeline files and the commands that run them."""
