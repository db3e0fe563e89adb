"""Linear probe (10 situations) on features.py output of 2-frame clips: train DIR, test DIR.

usage: linear_probe.py TRAIN_DIR TEST_DIR RES pool|grid
"""
import sys, numpy as np, torch, collections
from pathlib import Path
tr=Path(sys.argv[1]); te=Path(sys.argv[2]); res=sys.argv[3]; kind=sys.argv[4] if len(sys.argv)>4 else 'pool'
SIT=['car_passing','dog_barking','door_slamming','fire','glass_breaking','machine_humming','people_talking','person_running','quiet_room','rain']
def load(d):
    f=np.load(d/f"feats{res}.npy").astype(np.float32)
    if kind=='pool': f=f[:,:1280]
    rows=[l.rstrip('\n').split('\t') for l in open(d/'index.tsv')]
    X=[];Y=[]
    # moments: frame i at t, partner i-1 at t-0.5 s (2 fps); same single-situation span
    for i in range(1,len(rows)):
        n,t,s,st=rows[i]; t=int(t)
        if t % 1_000_000_000: continue
        if '+' in s or rows[i-1][2]!=s or int(rows[i-1][3])!=int(st): continue
        X.append(np.concatenate([f[i-1],f[i],f[i]-f[i-1]])); Y.append(SIT.index(s))
    return torch.tensor(np.array(X)),torch.tensor(Y)
Xtr,Ytr=load(tr); Xte,Yte=load(te)
mu=Xtr.mean(0); sd=Xtr.std(0)+1e-3; Xtr=(Xtr-mu)/sd; Xte=(Xte-mu)/sd
print('train',len(Ytr),'test',len(Yte), collections.Counter(Yte.tolist()))
torch.manual_seed(0)
for wd in [1e-4,1e-3,1e-2]:
    lin=torch.nn.Linear(Xtr.shape[1],10); opt=torch.optim.AdamW(lin.parameters(),1e-3,weight_decay=wd)
    for ep in range(30):
        perm=torch.randperm(len(Ytr))
        for b in range(0,len(Ytr),256):
            idx=perm[b:b+256]; loss=torch.nn.functional.cross_entropy(lin(Xtr[idx]),Ytr[idx]); opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        p=lin(Xte).argmax(1); acc=(p==Yte).float().mean().item()
        pc=[((p==Yte)&(Yte==c)).sum().item()/max(1,(Yte==c).sum().item()) for c in range(10)]
    print(f'wd {wd}: test top1 {acc:.3f} train {(lin(Xtr).argmax(1)==Ytr).float().mean():.3f}', ' '.join(f'{SIT[c][:6]}:{pc[c]:.2f}' for c in range(10)))
