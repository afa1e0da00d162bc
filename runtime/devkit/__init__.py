"""The plugin developer kit behind `streamspace-plugins plugin …` and `repo index`.

`scaffold` writes a new plugin folder, `validate` checks one, `packing` builds its archive and a
repository's index.json. None of it needs a server or a database.
"""
