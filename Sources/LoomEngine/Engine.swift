import LoomModel
