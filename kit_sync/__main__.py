from kit_sync.cli import main

main()
