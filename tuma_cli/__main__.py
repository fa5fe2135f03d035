from tuma_cli.main import run

run()
