"""Looking inside a trained generator. Each thing is imported from the module that defines it:

- `directions`: latent directions (SeFa, GANSpace), edits along them, strips, direction names.
- `invert`: projection of your own face into the latent space (the latent whose face is closest).
- `memorisation`: a generated face's nearest training faces, and the memorisation score.
- `anatomy`: where those tools cut G and D open (the first layer, D's features).
"""
