from mlops_kit.cli import main

main()
