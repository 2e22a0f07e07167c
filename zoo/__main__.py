import sys

from zoo.cli.commands import main

sys.exit(main())
