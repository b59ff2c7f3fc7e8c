"""Captioning and tagging: BLIP and GIT captioners, the WD14 tagger, `basic_caption` and the caption
editing rules the GUI's caption editor uses, and finding the models they load."""
