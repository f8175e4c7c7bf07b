"""Image and lip metrics shared by training, rendering and evaluation: PSNR, SSIM, LMD, LPIPS."""
