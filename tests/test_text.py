from kdforaa.text import count


def test_counts_take_the_noun_in_the_right_number():
    assert [count(n, "channel") for n in (0, 1, 3)] == ["0 channels", "1 channel", "3 channels"]
    assert count(1, "class", "classes") == "1 class" and count(10, "class", "classes") == "10 classes"
