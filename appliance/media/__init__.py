"""Media control: rtpengine's ng protocol, prompts and recordings."""
