from ncf.cli import run

run()
