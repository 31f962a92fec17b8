from frugalml.cli import main

main()
