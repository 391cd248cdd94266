import sys

from playmill.cli import main

sys.exit(main())
