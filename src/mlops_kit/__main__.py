from mlops_kit.cli.app import main

main()
