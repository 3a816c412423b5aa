"""The command line's words: each command's parser (words.py, with the options every command
that runs a manifest shares, common.py), the parser class that says a usage error in one line
(usage.py, with the words other tools' users bring, other_tools.py), and what the values
read say, alone and together (values.py)."""
