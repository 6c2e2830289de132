"""The Wyoming front door (Home Assistant's protocol for local speech services): a TCP server
in the same process as HTTP, over the same speech services and engine."""
