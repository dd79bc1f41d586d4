from envrepo.cli import main

main()
