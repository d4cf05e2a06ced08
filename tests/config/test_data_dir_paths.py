"""A data directory path that cannot be one is a one-line ConfigError naming it, not a
traceback (NotADirectoryError, FileNotFoundError, PermissionError, IsADirectoryError), and an
empty ``--dir`` is refused rather than read as the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.store import T0
from lychgate.config import load_settings
from lychgate.config.paths import parse_data_dir
from lychgate.deployment.init import prepare_files
from lychgate.errors import ConfigError


def load_error(data_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir, {})
    return caught.value


def init_error(data_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        prepare_files(data_dir, {}, now=T0)
    return caught.value


@pytest.mark.parametrize("below", ["", "x", "x/y"])
def test_a_regular_file_as_the_data_dir_or_above_it_is_named(tmp_path: Path, below: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    data_dir = afile / below if below else afile
    for err in (load_error(data_dir), init_error(data_dir)):
        assert err.field == "data_dir"
        assert str(err) == (
            f"data_dir: {afile} is not a directory: give --dir (or LYCHGATE_DATA_DIR) a directory"
        )


def test_the_data_dir_given_by_the_variable_is_checked_too(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(ConfigError, match="is not a directory"):
        load_settings(None, {"LYCHGATE_DATA_DIR": str(afile)})


def test_a_directory_named_lychgate_toml_is_named(data_dir: Path) -> None:
    (data_dir / "lychgate.toml").mkdir()
    err = load_error(data_dir)
    assert err.field == "lychgate.toml"
    assert f"{data_dir.resolve() / 'lychgate.toml'} is a directory" in str(err)
    assert init_error(data_dir).field == "lychgate.toml"


def test_an_unreadable_lychgate_toml_is_named(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (data_dir / "lychgate.toml").write_text("")

    def refuse(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)  # root may read any file: as another user
    assert "cannot read" in str(load_error(data_dir))
    assert "Permission denied" in str(load_error(data_dir))


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(2, "No such file or directory"),  # mkdir /proc/x
        PermissionError(1, "Operation not permitted"),  # mkdir /sys/kernel/x
    ],
)
def test_a_data_dir_init_cannot_make_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    root = tmp_path / "x"

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        error.filename = str(self)
        raise error

    monkeypatch.setattr(Path, "mkdir", refuse)
    err = init_error(root)
    assert err.field == "data_dir"
    assert str(err) == (
        f"data_dir: cannot create the deployment in {root} ({error.strerror}): give --dir a "
        "directory this user may create and write"
    )


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_init_in_proc_is_refused_in_one_line() -> None:
    assert init_error(Path("/proc/lychgate-test-x")).field == "data_dir"


def test_a_symlink_loop_is_named(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert load_error(loop / "x").field == "data_dir"


@pytest.mark.parametrize("text", ["", " ", "\t"])
def test_an_empty_dir_option_is_refused(text: str) -> None:
    # Path("") is Path("."): `init --dir "$UNSET"` set up the current directory, mode 0700.
    with pytest.raises(ValueError, match="an empty data directory path: give a directory"):
        parse_data_dir(text)


def test_a_dir_option_is_a_path() -> None:
    assert parse_data_dir("~/lychgate") == Path("~/lychgate")
    assert parse_data_dir(".") == Path(".")  # the current directory, when asked for by name


def test_an_empty_variable_still_counts_as_unset(tmp_path: Path) -> None:
    env = {"LYCHGATE_DATA_DIR": "", "XDG_DATA_HOME": str(tmp_path)}
    assert load_settings(None, env).data_dir == (tmp_path / "lychgate").resolve()
