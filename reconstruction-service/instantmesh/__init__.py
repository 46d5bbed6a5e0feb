"""InstantMesh: Zero123++ multi-view images and the InstantMesh reconstruction model (docs/instantmesh.md)."""
