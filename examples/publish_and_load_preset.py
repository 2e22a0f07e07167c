"""Save a preset, host it over HTTP, and load it back by URL, pinned and cached.

    KERAS_BACKEND=torch python examples/publish_and_load_preset.py

Any static HTTP server can host presets; this script starts Python's own on
127.0.0.1 for the demonstration, with the zoo cache in a temporary folder.
"""

import functools
import http.server
import os
import tempfile
import threading
from pathlib import Path

import keras
import numpy as np

import zoo
from zoo.hub import cache, folder_format


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main():
    workdir = Path(tempfile.mkdtemp(prefix="zoo-publish-"))
    os.environ["ZOO_HOME"] = str(workdir / "cache")  # keep the demonstration out of ~/.keras

    # 1. Save: a preset folder with a sha256 manifest.
    model = zoo.load("transformer-encoder-tiny", num_classes=3)
    folder = zoo.save_preset(model, workdir / "site" / "my-encoder", dataset="none (random init)",
                             label_names=["negative", "neutral", "positive"])
    pin = folder_format.sha256_of(folder / folder_format.MANIFEST_FILE)
    print(f"saved {folder}, manifest sha256 {pin}")

    # 2. Host: a static file server is all it takes.
    handler = functools.partial(QuietHandler, directory=str(workdir / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/my-encoder/#sha256={pin}"

    # 3. Load by URL: downloaded once, verified, cached; the second load is local.
    try:
        downloaded = zoo.load(url)
        again = zoo.load(url)
    finally:
        server.shutdown()
    x, _ = model.example_batch()
    same = np.array_equal(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(downloaded(x)))
    print(f"loaded {url}: outputs identical to the saved model: {same}")
    print(f"label names travel with it: {downloaded.preset_metadata['label_names']}")
    for entry, record in cache.cache_entries():
        print(f"cached as {entry.name} from {record['location']}")
    return same and again.count_params() == model.count_params()


if __name__ == "__main__":
    main()
