"""Neural style transfer: Gatys et al. 2015 (pixel optimisation) and Johnson et al. 2016
(feed-forward transformer nets), sharing one loss network and one set of losses."""

from nst.errors import NSTError

__all__ = ["NSTError"]
