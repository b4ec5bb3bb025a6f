import pytest

from weightless_lab.cli.main import main


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) != 0
    assert "usage" in capsys.readouterr().err.lower()


def test_version(capsys):
    from weightless import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"weightless {__version__}"
