import sys

from virtkit.daemon.main import main

sys.exit(main())
