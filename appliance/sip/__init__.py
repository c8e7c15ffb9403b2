"""SIP-side policy that Kamailio's KEMI glue applies (pure Python, no KSR)."""
