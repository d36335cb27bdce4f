from tlrules.cli import run

run()
