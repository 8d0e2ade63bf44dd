import csv
import gzip

from tweetflow_model import common, split


def lines(path):
    return gzip.decompress(path.read_bytes()).splitlines(keepends=True)


def ids(rows):
    return [next(csv.reader([r.decode("utf-8")]))[1] for r in rows]


def test_train_and_validation_are_disjoint_and_cover_the_training_file_exactly():
    whole, train, val = lines(common.TRAIN_CSV), lines(common.TRAIN_PART_CSV), lines(common.VALIDATION_CSV)
    assert len(train) + len(val) == len(whole) == 53_936
    assert not set(ids(train)) & set(ids(val))
    assert sorted(train + val) == sorted(whole)
    # each part keeps the training file's order (by id)
    position = {line: i for i, line in enumerate(whole)}
    for part in (train, val):
        assert [position[line] for line in part] == sorted(position[line] for line in part)
    # about 10 % held out, both labels in it
    assert 0.09 < len(val) / len(whole) < 0.11
    assert {r[:3] for r in val} == {b'"0"', b'"4"'}


def test_each_tweet_is_in_the_part_its_id_gives():
    for path, held_out in ((common.TRAIN_PART_CSV, False), (common.VALIDATION_CSV, True)):
        assert {split.is_validation(i) for i in ids(lines(path))} == {held_out}, path.name


def test_the_part_depends_on_the_id_alone():
    whole = gzip.decompress(common.TRAIN_CSV.read_bytes()).splitlines(keepends=True)
    reordered = b"".join(whole[5000:] + whole[:5000])
    train, val = split.split_lines(reordered)
    assert sorted(val.splitlines()) == sorted(r.rstrip(b"\n") for r in lines(common.VALIDATION_CSV))
    assert sorted(train.splitlines()) == sorted(r.rstrip(b"\n") for r in lines(common.TRAIN_PART_CSV))


def test_unseen_is_validation_then_test():
    assert lines(common.UNSEEN_CSV) == lines(common.VALIDATION_CSV) + lines(common.TEST_CSV)


def test_checked_in_files_pass_the_split_check(capsys):
    split.main(["--check"])
    assert capsys.readouterr().out.count(" ok ") == 3
