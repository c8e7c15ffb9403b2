"""IVR menus (IVR语音导航): a prompt, then each key leads somewhere."""
