"""Where presets come from, and how a name becomes a model:

    name -> card (zoo.registry) -> source (sources.py) -> verified folder
    (resolving.py: bundled, in place, hosted.py, or cache.py with downloads.py
    and archives.py; hashed once) -> build and weights (models.py)

folder_format.py is the preset folder format and its verification, with no
Keras; loader.py is `zoo.load`.
"""
