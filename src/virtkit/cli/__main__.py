import sys

from virtkit.cli.main import main

sys.exit(main())
