from clawctl.cli.main import main

main()
