"""Style networks, the VGG16 loss network, losses, training and Gatys optimization.

Frame/tensor convention for everything in `nets/`: float tensors (B, 3, H, W), RGB, range 0..1.
Nothing here picks a device; callers pass tensors already on the device they want.
"""
