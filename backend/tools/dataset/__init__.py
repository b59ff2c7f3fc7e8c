"""Dataset folders: images with their caption files, a DreamBooth-style layout planned and made
(`prepare_dataset`), and a folder checked before training (`verify_dataset`)."""
