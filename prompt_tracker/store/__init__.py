"""Redis persistence: the Flask-Session interface, conversations and their edits, reply tickets,
export/import, the admin scans and the ``flask sessions`` CLI, Redis URLs and clients."""
