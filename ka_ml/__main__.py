from ka_ml.cli import main

main()
