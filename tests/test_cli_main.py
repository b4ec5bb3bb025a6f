from weightless_lab.cli.main import main


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) != 0
    assert "usage" in capsys.readouterr().err.lower()


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "weightless" in capsys.readouterr().out
