import numpy as np
import pytest
import torch
from PIL import Image

from kdforaa.data.folder import ImageFolder, decode_image
from kdforaa.errors import BadInput


def test_uniform_png_decodes_to_exact_colour(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (40, 25), (12, 200, 77)).save(path)
    x = decode_image(path, 16)
    assert x.dtype == torch.uint8 and x.shape == (3, 16, 16)
    assert x[:, 0, 0].tolist() == [12, 200, 77] and (x == x[:, :1, :1]).all()


@pytest.mark.parametrize("size", [(60, 20), (20, 60)], ids=["wide", "tall"])
def test_shorter_side_resized_then_centre_cropped(tmp_path, size):
    """Thirds red | green | blue along the long side: the centre crop keeps mostly green."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    long_axis = 1 if w > h else 0
    for channel in range(3):
        third = [slice(None), slice(None)]
        third[long_axis] = slice(channel * max(w, h) // 3, (channel + 1) * max(w, h) // 3)
        img[third[0], third[1], channel] = 255
    Image.fromarray(img).save(tmp_path / "thirds.png")
    x = decode_image(tmp_path / "thirds.png", 10)
    assert x.shape == (3, 10, 10)
    # the long side becomes 30 and the crop spans 10..20, the green third; only its outermost pixels
    # blend with the neighbouring thirds (antialiased resize)
    inner = x[:, 1:-1, :] if long_axis == 0 else x[:, :, 1:-1]
    assert (inner[1] == 255).all() and (inner[0] == 0).all() and (inner[2] == 0).all()
    assert (x[1] > 2 * x[0]).all() and (x[1] > 2 * x[2]).all()


def test_grey_and_palette_images_become_rgb(tmp_path):
    Image.new("L", (9, 9), 90).save(tmp_path / "grey.png")
    Image.new("P", (9, 9), 3).save(tmp_path / "pal.gif")
    grey = decode_image(tmp_path / "grey.png", 9)
    assert grey.shape == (3, 9, 9) and (grey == 90).all()
    assert decode_image(tmp_path / "pal.gif", 4).shape == (3, 4, 4)


def test_large_jpeg_uses_reduced_decoding_but_keeps_the_size(tmp_path):
    Image.new("RGB", (800, 600), (200, 100, 50)).save(tmp_path / "big.jpg", quality=95)
    x = decode_image(tmp_path / "big.jpg", 32)
    assert x.shape == (3, 32, 32)
    assert (x.int() - torch.tensor([200, 100, 50]).view(3, 1, 1)).abs().max() <= 3


def test_corrupt_image_names_the_file(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(BadInput, match=r"cannot decode image .*bad.jpg"):
        decode_image(tmp_path / "bad.jpg", 8)


def test_folder_lists_classes_and_labels_in_order(make_image_folder):
    fake = make_image_folder(classes=("zebra", "ant", "cat"), per_class=(3, 2))
    train = ImageFolder(fake.root, "train", 8)
    assert train.classes == ("ant", "cat", "zebra") and train.num_classes == 3
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [p.name for p in train.paths[:3]] == ["000.png", "001.jpg", "002.png"]
    test = ImageFolder(fake.root, "test", 8)
    assert len(test) == 6 and all(p.parent.parent.name == "val" for p in test.paths)
    x = train.images(torch.tensor([0, 2]))
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.uint8
    assert torch.equal(train.load(0), x[0])


def test_folder_ignores_hidden_and_non_image_files(make_image_folder):
    fake = make_image_folder(classes=("a",), per_class=(2, 1))
    (fake.root / "train" / "a" / "notes.txt").write_text("x")
    (fake.root / "train" / "a" / ".hidden.png").write_bytes(b"")
    (fake.root / "train" / ".cache").mkdir()
    train = ImageFolder(fake.root, "train", 8)
    assert len(train) == 2 and train.classes == ("a",)


def test_first_keeps_the_leading_samples(make_image_folder):
    fake = make_image_folder(per_class=(3, 1))
    folder = ImageFolder(fake.root, "train", 8)
    head = folder.first(4)
    assert len(head) == 4 and head.paths == folder.paths[:4] and len(folder) == 6
    assert head.labels.tolist() == [0, 0, 0, 1]


def test_missing_empty_and_unknown_class_folders(tmp_path, make_image_folder):
    with pytest.raises(BadInput, match=r"missing folder .*train: expected"):
        ImageFolder(tmp_path, "train", 8)
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(BadInput, match="has no class sub-folders"):
        ImageFolder(tmp_path, "train", 8)
    (tmp_path / "train" / "cat").mkdir()
    with pytest.raises(BadInput, match=r"train holds no images"):
        ImageFolder(tmp_path, "train", 8)
    fake = make_image_folder(classes=("cat",), per_class=(1, 1))
    (fake.root / "val" / "dog").mkdir()
    with pytest.raises(BadInput, match="val/dog is a class that .*train does not have"):
        ImageFolder(fake.root, "test", 8)
