"""A source -> a verified local preset folder: bundled with the package,
used in place, fetched through the Hugging Face or Kaggle libraries, or
downloaded into the zoo's cache. Every folder is verified against its
manifest before it is returned, and nothing else hashes it again.
"""

from pathlib import Path

from zoo import registry, settings
from zoo.errors import InvalidPresetError, ZooError
from zoo.hub import cache, folder_format, hosted, sources
from zoo.hub.checkpoints.reading import checkpoint_fingerprint, is_checkpoint_folder
from zoo.runtime import scratch


def resolve(source, *, quiet=None, repair=False):
    """A verified local preset folder for `source`, downloading it if needed.

    With `repair`, a cache entry that no longer verifies is fetched again
    instead of raising (what `zoo download` does).
    """
    source = source if isinstance(source, sources.Source) else sources.parse_source(source)
    if source.kind == "builtin":
        return resolve_builtin(registry.info(source.location), quiet=quiet, repair=repair)
    if source.kind == "folder":
        if is_checkpoint_folder(source.location):
            return converted_folder(source.location)
        folder_format.verify_folder(source.location, hint="The folder is damaged: copy or save the preset again.")
        return Path(source.location)
    if source.kind == "keras-file":
        raise InvalidPresetError(
            f"{source.location} is a Keras model file, not a preset folder: zoo.load() reads it as it "
            "is, and there is nothing to download. To make it a preset: "
            "zoo.save_preset(zoo.load(path), folder)."
        )
    if source.kind == "hf":
        return from_hugging_face(source.location)
    if source.kind == "kaggle":
        return hosted.from_kaggle(source.location)
    return cache.fetch_into_cache(source, quiet=quiet, repair=repair)


def resolve_builtin(card, *, quiet=None, repair=False):
    """The weights folder of a built-in card: bundled with the package, else
    fetched from $ZOO_MIRROR and pinned by the card's manifest hash."""
    if card.checkpoint is not None:
        return from_hugging_face(card.checkpoint["source"].removeprefix("hf://"), label=card.name)
    if not card.pretrained:
        raise ZooError(
            f"Preset {card.name!r} has no pretrained weights, so there is nothing to fetch: "
            f"zoo.load({card.name!r}) builds it freshly initialised."
        )
    folder_name, pin = card.weights["folder"], card.weights["manifest_sha256"]
    bundled = registry.builtin_cards_folder() / folder_name
    if bundled.is_dir():
        cache.check_pin(bundled / folder_format.MANIFEST_FILE, pin)
        folder_format.verify_folder(bundled, hint="The installation is damaged: reinstall keras-zoo.")
        return bundled
    mirror = settings.mirror()
    if not mirror:
        raise ZooError(
            f"The weights of {card.name!r} are not bundled with this installation and ZOO_MIRROR "
            "is not set. Set ZOO_MIRROR to a server hosting the preset folders, or reinstall keras-zoo."
        )
    url = f"{mirror.rstrip('/')}/{folder_name}/"
    return cache.fetch_into_cache(sources.Source("http-folder", url, pin), quiet=quiet, label=card.name, repair=repair)


def converted_folder(folder):
    """The zoo preset of a local transformers checkpoint folder, converted
    once: the cache entry is named after the checkpoint's contents, so an
    edited checkpoint is converted again."""
    folder = Path(folder)
    entry_name = f"{folder.name[:40]}-{checkpoint_fingerprint(folder)[:16]}"
    return cache.convert_into_cache(entry_name, str(folder), str(folder), lambda: folder)


def from_hugging_face(location, label=None):
    """A verified preset folder for hf://`location`: the repository's zoo
    preset, or its transformers checkpoint converted once into the cache
    (`label`: how messages name it, the source by default)."""
    source = f"hf://{location}"
    label = label or source
    entry_name = "hf-" + "".join(c if c.isalnum() or c in "-._@" else "_" for c in location)
    if (cache.cache_root() / entry_name / cache.SOURCE_FILE).is_file():
        return cache.convert_into_cache(entry_name, label, source, None)
    if hosted.hugging_face_holds_preset(location):
        return hosted.from_hugging_face(location)
    return cache.convert_into_cache(entry_name, label, source, lambda: hosted.checkpoint_from_hugging_face(location))


def convert_source(source, destination, *, overwrite=False):
    """`zoo convert`: the zoo preset of a checkpoint `source` (a checkpoint
    folder, hf://..., or a checkpoint card such as "gpt2"), converted once
    into the cache and copied to `destination`; returns its path."""
    import shutil

    parsed = sources.parse_source(source)
    is_card = parsed.kind == "builtin" and registry.info(parsed.location).checkpoint is not None
    is_checkpoint = parsed.kind == "hf" or (parsed.kind == "folder" and is_checkpoint_folder(parsed.location))
    if not (is_card or is_checkpoint):
        raise InvalidPresetError(
            f"{source} is not a transformers checkpoint (a folder with config.json naming a model_type, an "
            f"hf:// repository, or one of the checkpoint presets {registry.list_presets(checkpoint=True)}); "
            "a zoo preset needs no conversion."
        )
    destination = Path(destination)
    folder_format.check_writable_folder(destination, overwrite, hint="pass --overwrite to replace it")
    converted = resolve(parsed)
    with scratch.removed_afterwards(scratch.beside(destination)) as staging:
        shutil.copytree(converted, staging, ignore=shutil.ignore_patterns(cache.SOURCE_FILE))
        folder_format.verify_folder(staging, exact=True)
        folder_format.replace_folder(staging, destination)
    return destination
