from kit_sync.entry import main

main()
