"""The example domain: documents uploaded from URLs, analyzed, turned into expenses."""
