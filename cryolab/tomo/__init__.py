"""A cryo-ET simulator after cryo-TomoSim: specimen, microscope, reconstruction, one call."""
