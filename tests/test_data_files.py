"""Reading users' data files: tables, image folders, text CSVs and text files.

The module is framework-free, but like the whole suite it runs once per backend.
"""

import csv
import keyword
from pydoc_data.topics import topics

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_diabetes, load_digits, load_iris

import zoo
from zoo.data.data_files import (
    DataFileError,
    DataFileNotFoundError,
    check_classes,
    check_features,
    detect_kind,
    read_image_folder,
    read_table,
    read_text_csv,
    read_text_file,
    read_text_pairs,
    train_validation_split,
)


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def row_of(path, marker):
    """The line number (1-based) of the first line of `path` containing `marker`."""
    lines = path.read_text(encoding="utf-8").split("\n")
    return next(number for number, line in enumerate(lines, 1) if marker in line)


# ------------------------------------------------------------------ tables

@pytest.fixture
def iris_csv(tmp_path):
    iris = load_iris()
    species = iris.target_names[iris.target]
    rows = [[repr(float(value)) for value in features] + [name] for features, name in zip(iris.data, species)]
    return write_csv(tmp_path / "iris.csv", [*iris.feature_names, "species"], rows), iris


@pytest.mark.backend_free
def test_read_table_gives_the_source_features_and_sorted_class_names(iris_csv):
    path, iris = iris_csv
    table = read_table(path, target="species")
    np.testing.assert_array_equal(table.x, iris.data.astype("float32"))
    assert table.x.dtype == np.float32 and table.y.dtype == np.int32
    assert table.feature_names == list(iris.feature_names)
    assert table.label_names == sorted(iris.target_names)
    names = np.array(table.label_names)
    np.testing.assert_array_equal(names[table.y], iris.target_names[iris.target])


@pytest.mark.backend_free
def test_numeric_class_labels_sort_numerically_and_the_target_may_be_any_column(tmp_path):
    labels = ["10", "2", "1", "10", "2"]
    rows = [[label, str(index), str(index * 2)] for index, label in enumerate(labels)]
    table = read_table(write_csv(tmp_path / "t.csv", ["grade", "a", "b"], rows), target="grade")
    assert table.label_names == ["1", "2", "10"]
    assert table.y.tolist() == [2, 1, 0, 2, 1]
    assert table.feature_names == ["a", "b"]
    np.testing.assert_array_equal(table.x, [[index, index * 2] for index in range(5)])


@pytest.mark.backend_free
def test_given_label_names_map_the_file_onto_a_models_classes(iris_csv, tmp_path):
    path, iris = iris_csv
    model_names = ["virginica", "setosa", "versicolor", "unseen"]
    table = read_table(path, target="species", label_names=model_names)
    assert table.label_names == model_names
    np.testing.assert_array_equal(np.array(model_names)[table.y], iris.target_names[iris.target])
    with pytest.raises(DataFileError, match=r"iris\.csv row 2, target column 'species': 'setosa' is not one"):
        read_table(path, target="species", label_names=["virginica", "versicolor"])


@pytest.mark.backend_free
def test_regression_targets_are_float_columns(tmp_path):
    diabetes = load_diabetes()
    rows = [[repr(float(v)) for v in features] + [repr(float(t)), repr(float(-t))]
            for features, t in zip(diabetes.data[:60], diabetes.target[:60])]
    path = write_csv(tmp_path / "d.csv", [*diabetes.feature_names, "progression", "negated"], rows)
    one = read_table(path, target="progression", task="regression")
    assert one.y.dtype == np.float32 and one.label_names is None
    np.testing.assert_array_equal(one.y[:, 0], diabetes.target[:60].astype("float32"))
    assert one.feature_names == [*diabetes.feature_names, "negated"]
    both = read_table(path, target=["progression", "negated"], task="regression")
    np.testing.assert_array_equal(both.x, diabetes.data[:60].astype("float32"))
    np.testing.assert_array_equal(both.y, np.stack([diabetes.target[:60], -diabetes.target[:60]], 1).astype("float32"))


@pytest.mark.backend_free
def test_a_spreadsheet_byte_order_mark_and_blank_lines_are_accepted(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffx,label\r\n1.5,a\r\n\r\n-2,b\r\n".encode("utf-8"))
    table = read_table(path, target="label")
    assert table.feature_names == ["x"] and table.x[:, 0].tolist() == [1.5, -2.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b,y\n1,2,x\n3,four,y\n", r"t\.csv row 3, column 'b': 'four' is not a finite number"),
        ("a,b,y\n1,2,x\n3,nan,y\n", r"t\.csv row 3, column 'b': 'nan' is not a finite number"),
        ("a,b,y\n1,2,x\n,4,y\n", r"t\.csv row 3, column 'a' is empty\. .*not imputed"),
        ("a,b,y\n1,2,x\n3,4,\n", r"t\.csv row 3, target column 'y' is empty"),
        ("a,b,y\n1,2,x\n\n3,4\n", r"t\.csv row 4 has 2 cells but the header has 3 columns \(a, b, y\)"),
        ("a,b,y\n1,2,x,9\n", r"t\.csv row 2 has 4 cells but the header has 3"),
        ("", r"t\.csv is empty; expected a header row"),
        ("\n\n", r"t\.csv is empty"),
        ("a,b,y\n", r"t\.csv has a header but no data rows"),
        ("a,a,y\n1,2,x\n", r"t\.csv: the header names column\(s\) 'a' more than once"),
        ("a,b,label\n1,2,x\n", r"t\.csv has no target column 'y'\. .*Its columns are: a, b, label\."),
        ("y\nx\n", r"t\.csv has no feature columns"),
    ],
)
@pytest.mark.backend_free
def test_table_errors_name_the_file_row_and_column(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFileError, match=message):
        read_table(path, target="y")


@pytest.mark.backend_free
def test_missing_target_suggests_a_close_name(iris_csv):
    path, _ = iris_csv
    with pytest.raises(DataFileError, match=r"no target column 'specie'\. Did you mean 'species'\?"):
        read_table(path, target="specie")


@pytest.mark.backend_free
def test_non_utf8_and_bad_arguments_are_refused(tmp_path, iris_csv):
    path = tmp_path / "latin.csv"
    path.write_bytes("a,y\n1,x\n2,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFileError, match=r"latin\.csv row 3 is not valid UTF-8"):
        read_table(path, target="y")
    with pytest.raises(zoo.InvalidConfigError, match="task must be"):
        read_table(iris_csv[0], target="species", task="clustering")
    with pytest.raises(zoo.InvalidConfigError, match="one target column"):
        read_table(iris_csv[0], target=["species", "sepal width (cm)"])


@pytest.mark.backend_free
def test_a_missing_path_is_a_file_not_found_zoo_error(tmp_path):
    missing = tmp_path / "nowhere.csv"
    readers = (detect_kind, read_text_file, lambda p: read_table(p, "y"), lambda p: read_image_folder(p, (8, 8, 1)))
    for reader in readers:
        with pytest.raises(DataFileNotFoundError, match=r"No such data file or folder: .*nowhere\.csv") as caught:
            reader(missing)
        assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, zoo.ZooError)


# ------------------------------------------------------------------ detection

@pytest.mark.backend_free
def test_detect_kind_follows_the_documented_scheme(tmp_path, iris_csv):
    write_csv(tmp_path / "texts.csv", ["label", "text"], [["a", "hello"]])
    write_csv(tmp_path / "pairs.csv", ["source", "target", "text"], [["a", "b", "c"]])
    (tmp_path / "book.txt").write_text("Once.\n", encoding="utf-8")
    (tmp_path / "data.json").write_text("{}", encoding="utf-8")
    assert detect_kind(iris_csv[0]) == "table"
    assert detect_kind(tmp_path / "texts.csv") == "text_csv"
    assert detect_kind(tmp_path / "texts.csv", text_column="body") == "table"
    assert detect_kind(tmp_path / "pairs.csv") == "text_pairs"
    assert detect_kind(tmp_path / "book.txt") == "text"
    assert detect_kind(tmp_path) == "images"
    with pytest.raises(DataFileError, match=r"data\.json is neither a folder nor a \.csv/\.txt file"):
        detect_kind(tmp_path / "data.json")


# ------------------------------------------------------------------ images

def digit_pixels(count):
    """uint8 grayscale digits (count, 8, 8) from scikit-learn's bundled set, and their classes."""
    digits = load_digits()
    return np.round(digits.images[:count] * 255 / 16).astype("uint8"), digits.target[:count]


def save_digits(root, pixels, classes, save):
    """Save digit i as root/<class>/<i>.<ext> with `save(i, pixels, folder)`."""
    for index, (image, label) in enumerate(zip(pixels, classes)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        save(index, image, folder)
    return sorted(range(len(classes)), key=lambda i: (classes[i], i))  # the order files are read in


def save_png_gray_or_rgb(index, image, folder):
    picture = Image.fromarray(image)
    (picture if index % 2 else picture.convert("RGB")).save(folder / f"{index:03d}.png")


@pytest.mark.backend_free
def test_image_folder_png_grayscale_rgb_mix_is_read_exactly(tmp_path):
    pixels, classes = digit_pixels(40)
    order = save_digits(tmp_path, pixels, classes, save_png_gray_or_rgb)
    (tmp_path / "3" / "notes.txt").write_text("not an image", encoding="utf-8")
    (tmp_path / "3" / ".thumbnail.png").write_bytes(b"hidden, skipped")
    (tmp_path / ".cache").mkdir()
    expected = pixels[order].astype("float32")[..., None] / 255

    gray = read_image_folder(tmp_path, (8, 8, 1), progress=True)
    assert gray.x.dtype == np.float32 and gray.y.dtype == np.int32
    np.testing.assert_array_equal(gray.x, expected)
    assert gray.label_names == [str(label) for label in sorted(set(classes))]
    np.testing.assert_array_equal(np.array(gray.label_names)[gray.y], classes[order].astype(str))
    assert [file.name for file in gray.files] == [f"{i:03d}.png" for i in order]

    rgb = read_image_folder(tmp_path, [8, 8, 3], progress=False)
    np.testing.assert_array_equal(rgb.x, np.repeat(expected, 3, axis=-1))
    np.testing.assert_array_equal(rgb.y, gray.y)


@pytest.mark.backend_free
def test_images_of_other_sizes_are_resized_keeping_orientation(tmp_path):
    solid = {"big": ((200, 100, 50), (31, 17)), "small": ((10, 250, 90), (3, 5))}
    for name, (colour, size) in solid.items():
        (tmp_path / name).mkdir()
        Image.new("RGB", size, colour).save(tmp_path / name / "solid.png")
    halves = np.zeros((12, 20), "uint8")
    halves[:, 10:] = 255  # left half black, right half white
    (tmp_path / "halves").mkdir()
    Image.fromarray(halves).save(tmp_path / "halves" / "halves.bmp")

    images = read_image_folder(tmp_path, (6, 10, 3))
    assert images.label_names == ["big", "halves", "small"]
    assert images.x.shape == (3, 6, 10, 3)
    for index, name in [(0, "big"), (2, "small")]:
        colour = np.float32(solid[name][0]) / 255
        np.testing.assert_allclose(images.x[index], np.broadcast_to(colour, (6, 10, 3)), rtol=0, atol=1e-7)
    assert (images.x[1, :, :4] == 0).all() and (images.x[1, :, 6:] == 1).all()  # bilinear blends only mid-image

    gray = read_image_folder(tmp_path, (6, 10, 1))
    luma = np.array(solid["big"][0]) @ [0.299, 0.587, 0.114]  # ITU-R 601-2, as documented by pillow
    np.testing.assert_allclose(gray.x[0], luma / 255, rtol=0, atol=1 / 255)


@pytest.mark.backend_free
def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    pixels, _ = digit_pixels(1)
    (tmp_path / "deep").mkdir()
    Image.fromarray(pixels[0].astype("uint16") * 257).save(tmp_path / "deep" / "16bit.png")  # 255 -> 65535
    assert Image.open(tmp_path / "deep" / "16bit.png").mode == "I;16"
    for channels in (1, 3):
        x = read_image_folder(tmp_path, (8, 8, channels)).x[0]
        np.testing.assert_array_equal(x, np.repeat(pixels[0][..., None] / np.float32(255), channels, axis=-1))


@pytest.mark.backend_free
def test_a_cameras_exif_rotation_is_applied(tmp_path):
    halves = np.zeros((12, 20), "uint8")
    halves[:, 10:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: shown rotated 90 degrees clockwise, so the left half goes on top
    (tmp_path / "photos").mkdir()
    Image.fromarray(halves).save(tmp_path / "photos" / "rotated.png", exif=exif)
    x = read_image_folder(tmp_path, (10, 6, 1)).x[0, :, :, 0]
    assert (x[:4] == 0).all() and (x[6:] == 1).all()


@pytest.mark.backend_free
def test_jpeg_and_upscaled_digits_come_back_close_to_the_source(tmp_path):
    pixels, classes = digit_pixels(20)

    def save(index, image, folder):
        if index % 2:  # JPEG is lossy: compared with a tolerance below
            Image.fromarray(image).save(folder / f"{index:03d}.jpg", quality=100)
        else:  # 16x16: each pixel a 2x2 block, read back at 8x8
            Image.fromarray(np.kron(image, np.ones((2, 2), "uint8"))).save(folder / f"{index:03d}.png")

    order = save_digits(tmp_path, pixels, classes, save)
    images = read_image_folder(tmp_path, (8, 8, 1))
    source = pixels[order].astype("float32")[..., None] / 255
    jpeg = np.array([index % 2 == 1 for index in order])
    np.testing.assert_allclose(images.x[jpeg], source[jpeg], rtol=0, atol=2 / 255)
    assert np.abs(images.x[~jpeg] - source[~jpeg]).mean(axis=(1, 2, 3)).max() < 0.12
    assert images.x.min() >= 0 and images.x.max() <= 1


@pytest.mark.backend_free
def test_unreadable_images_are_named(tmp_path):
    pixels, classes = digit_pixels(4)
    save_digits(tmp_path, pixels, classes, save_png_gray_or_rgb)
    (tmp_path / "1" / "broken.png").write_bytes(b"these bytes are no image")
    with pytest.raises(DataFileError, match=r"Cannot read image .*1.broken\.png"):
        read_image_folder(tmp_path, (8, 8, 1))
    (tmp_path / "1" / "broken.png").unlink()
    whole = (tmp_path / "2" / "002.png").read_bytes()
    (tmp_path / "2" / "002.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataFileError, match=r"Cannot read image .*2.002\.png"):
        read_image_folder(tmp_path, (8, 8, 1))


@pytest.mark.backend_free
def test_image_folder_layout_errors_explain_the_layout(tmp_path):
    Image.new("L", (8, 8)).save(tmp_path / "loose.png")
    with pytest.raises(DataFileError, match=r"no class sub-folders\. Lay images out as folder/class_name/image\.png"):
        read_image_folder(tmp_path, (8, 8, 1))
    (tmp_path / "cats").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "cats" / "a.png")
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "readme.txt").write_text("no pictures yet", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"Class folder .*dogs holds no images.*folder/class_name/image\.png"):
        read_image_folder(tmp_path, (8, 8, 1))
    with pytest.raises(DataFileError, match=r"loose\.png is a file"):
        read_image_folder(tmp_path / "loose.png", (8, 8, 1))
    for bad_shape in [(8, 8), (8, 8, 2), (0, 8, 1), (8.0, 8, 1)]:
        with pytest.raises(zoo.InvalidConfigError, match="image_shape must be"):
            read_image_folder(tmp_path, bad_shape)


# ------------------------------------------------------------------ text CSVs

def topic_rows(count):
    """(topic name, help text, keyword-or-other) rows from Python's own docs."""
    names = sorted(topics)[:count]
    return [(name, topics[name], "keyword" if keyword.iskeyword(name) else "other") for name in names]


@pytest.mark.backend_free
def test_text_csv_round_trips_multiline_quoted_texts(tmp_path):
    rows = topic_rows(12)
    path = write_csv(tmp_path / "topics.csv", ["name", "text", "kind"], rows)
    data = read_text_csv(path, target="kind")
    assert data.texts == [text for _, text, _ in rows]
    assert data.label_names == sorted({kind for _, _, kind in rows}) == ["keyword", "other"]
    assert [data.label_names[i] for i in data.y] == [kind for _, _, kind in rows]
    unlabelled = read_text_csv(path, text_column="name")
    assert unlabelled.texts == [name for name, _, _ in rows] and unlabelled.y is None


@pytest.mark.backend_free
def test_text_csv_errors_name_the_row_where_a_multiline_record_starts(tmp_path):
    rows = topic_rows(5)
    rows[3] = ("MARKER", rows[3][1], "")
    path = write_csv(tmp_path / "topics.csv", ["name", "text", "kind"], rows)
    marker_row = row_of(path, "MARKER")
    with pytest.raises(DataFileError, match=rf"topics\.csv row {marker_row}, target column 'kind' is empty"):
        read_text_csv(path, target="kind")
    with pytest.raises(DataFileError, match=r"topics\.csv has no text column 'body'.*columns are: name, text, kind"):
        read_text_csv(path, text_column="body")
    with pytest.raises(DataFileError, match=r"has no text or target column 'label'"):
        read_text_csv(path, target="label")
    rows[3] = ("MARKER", "   ", "other")
    write_csv(path, ["name", "text", "kind"], rows)
    with pytest.raises(DataFileError, match=rf"topics\.csv row {row_of(path, 'MARKER')}, column 'text' is empty"):
        read_text_csv(path)


@pytest.mark.backend_free
def test_text_pairs_come_back_in_order(tmp_path):
    rows = topic_rows(8)
    pairs = [(name, text.split("\n")[0]) for name, text, _ in rows]
    path = write_csv(tmp_path / "pairs.csv", ["id", "source", "target"], [(i, s, t) for i, (s, t) in enumerate(pairs)])
    assert read_text_pairs(path) == ([s for s, _ in pairs], [t for _, t in pairs])
    assert read_text_pairs(path, source_column="target", target_column="id")[1] == [str(i) for i in range(8)]
    with pytest.raises(DataFileError, match=r"pairs\.csv has no source or target column 'english'"):
        read_text_pairs(path, source_column="english")


# ------------------------------------------------------------------ text files

@pytest.mark.backend_free
def test_text_file_splits_paragraphs_at_blank_lines_or_lines(tmp_path):
    lines = [line.strip() for _, text, _ in topic_rows(3) for line in text.split("\n") if line.strip()][:30]
    paragraphs = ["\n".join(lines[start:start + 4]) for start in range(0, len(lines), 4)]
    separators = ["\n\n", "\n   \n\n", "\n\t\n"]
    content = "\n\n" + "".join(p + separators[i % 3] for i, p in enumerate(paragraphs))
    path = tmp_path / "book.txt"
    path.write_bytes(content.replace("\n", "\r\n").encode("utf-8"))
    assert read_text_file(path) == paragraphs
    assert read_text_file(path, unit="line") == lines


@pytest.mark.backend_free
def test_text_file_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n \t\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"empty\.txt holds no text"):
        read_text_file(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("one\ntwo\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFileError, match=r"latin\.txt row 3 is not valid UTF-8"):
        read_text_file(latin)
    with pytest.raises(zoo.InvalidConfigError, match="unit must be"):
        read_text_file(latin, unit="sentence")
    with pytest.raises(DataFileError, match="is a folder; expected a text file"):
        read_text_file(tmp_path)


# ------------------------------------------------------------------ checks against a model

def test_check_features_and_classes_against_a_real_model(iris_csv):
    path, _ = iris_csv
    table = read_table(path, target="species")
    model = zoo.load("dense-tiny")
    expected = model.zoo_config.num_features
    message = rf"iris\.csv has 4 feature columns but dense-tiny expects {expected} \(num_features\)"
    with pytest.raises(DataFileError, match=message):
        check_features(table.x, expected, data_name=path.name, model_name="dense-tiny")
    message = r"iris\.csv has 3 classes \(setosa, versicolor, virginica\) but dense-tiny has 2 outputs"
    with pytest.raises(DataFileError, match=message):
        check_classes(table.label_names, model.zoo_config.num_classes, data_name=path.name, model_name="dense-tiny")
    fitting = zoo.load("dense-tiny", num_features=4, num_classes=3)
    check_features(table.x, fitting.zoo_config.num_features, data_name=path.name, model_name="dense-tiny")
    check_classes(table.label_names, fitting.zoo_config.num_classes, data_name=path.name, model_name="dense-tiny")
    assert fitting.predict(table.x, verbose=0).shape == (len(table.y), len(table.label_names))


# ------------------------------------------------------------------ splitting

@pytest.mark.backend_free
def test_train_validation_split_is_a_seeded_stratified_partition():
    labels = load_iris().target
    train, validation = train_validation_split(len(labels), 0.2, seed=3, labels=labels)
    assert len(validation) == 30 and len(train) == 120
    assert np.array_equal(np.sort(np.concatenate([train, validation])), np.arange(150))
    assert (np.diff(train) > 0).all() and (np.diff(validation) > 0).all()  # documented: sorted
    assert np.bincount(labels[validation]).tolist() == [10, 10, 10]
    again = train_validation_split(len(labels), 0.2, seed=3, labels=labels)
    assert np.array_equal(again[1], validation)
    assert not np.array_equal(train_validation_split(len(labels), 0.2, seed=4, labels=labels)[1], validation)
    plain_train, plain_validation = train_validation_split(10, 0.3, seed=0)
    assert len(plain_validation) == 3 and set(plain_train) | set(plain_validation) == set(range(10))


@pytest.mark.backend_free
def test_train_validation_split_refuses_what_it_cannot_do():
    for fraction in (0, 1, 1.5):
        with pytest.raises(zoo.InvalidConfigError, match="validation_fraction must be between 0 and 1"):
            train_validation_split(10, fraction)
    with pytest.raises(DataFileError, match=r"Class\(es\) '2' have a single sample"):
        train_validation_split(5, 0.4, labels=[0, 0, 1, 1, 2])
    with pytest.raises(DataFileError, match=r"Class\(es\) 'c' have a single sample"):
        train_validation_split(5, 0.4, labels=[0, 0, 1, 1, 2], label_names=["a", "b", "c"])
    with pytest.raises(DataFileError, match="holds 1 of 5 samples, but a stratified split puts each of the 2 classes"):
        train_validation_split(5, 0.1, labels=[0, 0, 1, 1, 1])
    for n, fraction in ((1, 0.2), (10, 0.95)):
        with pytest.raises(DataFileError, match=f"{n} sample\\(s\\) cannot be split .* each part needs"):
            train_validation_split(n, fraction)
    with pytest.raises(zoo.InvalidConfigError, match="labels has 3 entries but n is 4"):
        train_validation_split(4, 0.5, labels=[0, 1, 0])
