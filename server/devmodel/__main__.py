import sys

from server.devmodel.builder import main

sys.exit(main())
