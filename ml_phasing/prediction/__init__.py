"""From a user's data to a network's prediction: densities and phases (Patterson to density), extended amplitudes."""
