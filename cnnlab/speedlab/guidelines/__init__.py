"""ShuffleNet v2's four guidelines (Ma et al. 2018, §2): the experiment networks of Tables 1-4,
their re-measurement, and the lint that flags what they warn against in any model."""
